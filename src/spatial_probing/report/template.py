"""The report's one HTML template (jinja2, autoescaped): self-contained, no external CSS, JS or fonts."""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root { --ink:#1f2328; --muted:#59636e; --line:#d8dee4; --bg:#fbfbfa; --card:#ffffff; --accent:#0072B2;
        --gain:#00704a; --loss:#a33a00; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; margin: 2.4rem 0 .6rem; padding-bottom: .3rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
p, li { max-width: 78ch; }
.muted { color: var(--muted); font-size: .9rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; margin: 1rem 0; }
.question { border-left: 4px solid var(--accent); }
.missing { border-left: 4px solid #E69F00; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; background: var(--card); }
.scroll { overflow-x: auto; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f2f4f6; font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sig td { background: #f3faf6; }
.gain { color: var(--gain); font-weight: 600; } .loss { color: var(--loss); font-weight: 600; }
figure { margin: 1.2rem 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .5rem; }
details { margin: 1rem 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: .8rem; border-radius: 6px; overflow-x: auto; font-size: .78rem; }
code { font-size: .85em; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p class="muted">Run directory <code>{{ run_dir }}</code>{% if finished %} · finished {{ finished }}{% endif %}
 · report built {{ built }}</p>

<div class="card question">
<strong>The question.</strong> Do visually grounded text embeddings (CLIP) encode spatial relations better than
distributional ones (BERT, Sentence-BERT), and which relation types gain from grounding or stay resistant? Linear
(or MLP) probing classifiers with control tasks and baselines, paired tests between encoders, and representational
similarity analysis (RSA) against reference geometries.
</div>

{% if headline %}
<div class="card"><strong>In short.</strong>
<ul>{% for line in headline %}<li>{{ line }}</li>{% endfor %}</ul></div>
{% endif %}

<h2 id="setup">Setup</h2>
<ul>
<li><strong>Datasets:</strong> {{ setup.datasets | join(", ") or "—" }}</li>
<li><strong>Probes:</strong> {{ setup.probes | join(", ") or "—" }} · <strong>probe seeds:</strong> {{ setup.seeds | join(", ") or "—" }}</li>
<li><strong>Layer read:</strong> {{ setup.layer_words }}</li>
<li><strong>Intervals:</strong> {{ setup.ci_words }}</li>
<li><strong>Controls:</strong> every probe is paired with a control task (labels a random function of the
lexical type named per task below); selectivity = accuracy − control accuracy.
{% if setup.control_encoders %}Control encoders: {{ setup.control_encoders | join(", ") }}.{% endif %}</li>
</ul>
{{ table(setup.tasks) }}
{{ table(setup.encoders) }}

<h2 id="comparisons">Headline comparisons</h2>
<p>Paired comparisons on the same test items ({{ selection_words }}); each item's correctness is averaged over
probe seeds. McNemar (exact) on the per-item majority, sign-flip permutation test on the seed-averaged scores, Holm
correction within each family of subsets. Intervals: 95%, {{ setup.ci_short }}.</p>
{% if comparisons and comparisons.rows %}<div class="scroll">{{ table(comparisons) }}</div>{% elif comparisons %}<p class="muted">{{ comparisons.caption }}</p>{% else %}<p class="muted">No encoder comparisons in this run.</p>{% endif %}

<h2 id="categories">Relation categories</h2>
{% if grounded %}
<p>Grounded encoder(s) in this run: {{ grounded | join(", ") }}. A category <span class="gain">gains</span> from
grounding when at least one grounded-vs-distributional comparison (control encoders excluded; lab objectives
compared seed-paired) is significant in favour of the grounded encoder (Holm p &lt; {{ alpha }}) and none against it;
it is <em>resistant</em> when no comparison is significant.</p>
{% if verdicts %}<div class="scroll">{{ table(verdicts) }}</div>{% endif %}
{% if category_findings %}<ul>{% for f in category_findings %}<li class="{{ f.kind }}-finding">{{ f.text }}</li>{% endfor %}</ul>{% endif %}
{% else %}
<p><strong>This run has no grounded encoder</strong> (no CLIP encoder and no lab-vision encoder), so it cannot say
which relation types gain from grounding.</p>
{% endif %}
{% for fig in figures.probing_categories %}{{ figure(fig) }}{% endfor %}

<h3>Baselines, chance and selectivity</h3>
{% if baseline_findings %}<ul>{% for f in baseline_findings %}<li>{{ f.text }}</li>{% endfor %}</ul>
{% else %}<p>No probe's interval covers chance, and no probe's selectivity interval covers zero.</p>{% endif %}
<div class="scroll">{{ table(accuracy) }}</div>
{% for fig in figures.probing %}{{ figure(fig) }}{% endfor %}

<h2 id="rsa">Representational similarity analysis</h2>
{% if rsa_findings %}
<ul>{% for f in rsa_findings %}<li>{{ f.text }}</li>{% endfor %}</ul>
<div class="scroll">{{ table(rsa) }}</div>
{% else %}<p class="muted">No RSA results in this run.</p>{% endif %}
{% for fig in figures.rsa %}{{ figure(fig) }}{% endfor %}

{% if lab %}
<h2 id="lab">Grounding lab: matched encoders, three objectives</h2>
<p>Small encoders with the same architecture, data, initial weights and batch order per seed, differing only in the
training objective ({{ lab.objectives }}), read at layer {{ lab.layer }}. Means over {{ lab.n_seeds }} lab seeds with
t intervals across seeds; differences are seed-paired (paired t-test and exact sign-flip over seeds; sign-flip over
test items when predictions are present), Holm-corrected per family.</p>
{% if lab.findings %}<ul>{% for line in lab.findings %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% for fig in figures.lab %}{{ figure(fig) }}{% endfor %}
<div class="scroll">{{ table(lab.summary) }}</div>
<div class="scroll">{{ table(lab.comparisons) }}</div>
<h3 id="lab-answer">The lab's answer per relation kind ({{ lab.label }})</h3>
{% if lab.answer_lines %}<ul>{% for line in lab.answer_lines %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% if lab.answer.rows %}<div class="scroll">{{ table(lab.answer) }}</div>{% endif %}
{% if lab.training %}<p>Training of the {{ lab.label }}: convergence and retrieval per arm.</p>
<div class="scroll">{{ table(lab.training) }}</div>{% endif %}
{% if lab.vision_check %}<p>Vision-side sanity check: a linear probe reads the sign of dx / dy between the two objects
from the scene CNN's image embedding (5-fold CV), trained and at its initial weights.</p>
<div class="scroll">{{ table(lab.vision_check) }}</div>{% endif %}
{% endif %}

<h2 id="missing">Not in this run</h2>
{% if missing %}<div class="card missing"><ul>{% for m in missing %}<li>{{ m }}</li>{% endfor %}</ul></div>
{% else %}<p>Nothing: every table, figure and section had its data.</p>{% endif %}

<h2 id="manifest">Run manifest</h2>
{% if manifest_json %}<details><summary>manifest.json (command, configuration, versions, units)</summary>
<pre>{{ manifest_json }}</pre></details>{% else %}<p class="muted">No manifest.json.</p>{% endif %}
</main>
</body>
</html>
"""

MACROS = r"""
{% macro table(t) -%}
{% if t and t.rows %}<table>{% if t.caption %}<caption class="muted">{{ t.caption }}</caption>{% endif %}
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr{% if t.highlight and t.highlight[loop.index0] %} class="sig"{% endif %}>
{% for cell in row %}<td{% if t.numeric[loop.index0] %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% endif %}
{%- endmacro %}
{% macro figure(f) -%}
<figure id="fig-{{ f.name }}"><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.png }}">
<figcaption><strong>{{ f.title }}.</strong> {{ f.caption }}</figcaption></figure>
{%- endmacro %}
"""
