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
p, li, figcaption, caption, code, summary, .card { overflow-wrap: anywhere; }
.glance { display: flex; flex-wrap: wrap; gap: .2rem 1.4rem; margin: .6rem 0 0; padding: 0; list-style: none; }
.glance li { max-width: none; }
nav.toc { font-size: .9rem; margin: .8rem 0 0; } nav.toc a { color: var(--accent); margin-right: .9rem; }
.muted { color: var(--muted); font-size: .9rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; margin: 1rem 0; }
.question { border-left: 4px solid var(--accent); }
.missing { border-left: 4px solid #E69F00; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; background: var(--card); }
caption { text-align: left; caption-side: bottom; padding-top: .3rem; }
.scroll { overflow-x: auto; max-width: 100%; }
@media (max-width: 600px) { main { padding: 1rem .8rem 3rem; } h1 { font-size: 1.4rem; } }
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
 · report built {{ built }} · paths below are relative to the run directory</p>

<div class="card" id="summary"><strong>In short.</strong>
{% if headline %}<ul>{% for f in headline %}<li class="verdict-sentence" data-kind="{{ f.kind }}" data-row="{{ f.row }}">{{ f.text }}
<a href="#{{ f.row }}">[table row]</a></li>{% endfor %}</ul>
{% else %}<p class="muted">No comparison in this run supports a statement yet.</p>{% endif %}
<ul class="glance muted">
<li><strong>Tasks:</strong> {{ setup.tasks.rows | length }}</li>
<li><strong>Encoders:</strong> {{ setup.encoders.rows | length }}{% if setup.control_encoders %} ({{ setup.control_encoders | length }} control{{ "s" if setup.control_encoders | length != 1 }}){% endif %}</li>
<li><strong>Probes:</strong> {{ setup.probes | join(", ") or "—" }}</li>
<li><strong>Seeds:</strong> {{ setup.seeds | length }}</li>
{% if missing %}<li><a href="#missing">{{ missing | length }} piece{{ "s" if missing | length != 1 }} not in this run</a></li>{% endif %}
</ul>
<nav class="toc"><a href="#setup">Setup</a><a href="#comparisons">Comparisons</a><a href="#categories">Categories</a>
<a href="#baselines">Baselines</a><a href="#rsa">RSA</a>{% if words %}<a href="#words">Meaning over words</a>{% endif %}{% if lab %}<a href="#lab">Lab</a>{% endif %}<a href="#missing">Not in this run</a>
<a href="#manifest">Manifest</a></nav>
</div>

<div class="card question">
<strong>The question.</strong> Do visually grounded text embeddings (CLIP) encode spatial relations better than
distributional ones (BERT, Sentence-BERT), and which relation types gain from grounding or stay resistant? Linear
(or MLP) probing classifiers with control tasks and baselines, paired tests between encoders, and representational
similarity analysis (RSA) against reference geometries.
</div>


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
{% if setup.encoders.rows | length > 8 %}<details><summary>Encoders ({{ setup.encoders.rows | length }}): kind, source,
revision, weights</summary>{{ table(setup.encoders) }}</details>{% else %}{{ table(setup.encoders) }}{% endif %}

<h2 id="comparisons">Headline comparisons</h2>
<p>Paired comparisons on the same test items ({{ selection_words }}); each item's correctness is averaged over
probe seeds. McNemar (exact) on the per-item majority, sign-flip permutation test on the seed-averaged scores, Holm
correction within each family of subsets. Intervals: 95%, {{ setup.ci_short }}.</p>
{% if comparisons and comparisons.rows %}{{ table(comparisons) }}{% elif comparisons %}<p class="muted">{{ comparisons.caption }}</p>{% else %}<p class="muted">No encoder comparisons in this run.</p>{% endif %}
{% if other_comparisons and other_comparisons.rows %}<details><summary>Other reported pairs ({{ other_comparisons.rows | length }}):
controls and lab objectives</summary>{{ table(other_comparisons) }}</details>{% endif %}

<h2 id="verdict-family">Verdicts: one family of pre-specified contrasts</h2>
{% if family %}
<p>The questions this run answers, declared by rule before looking at the results: per task × subset (all items
and each relation category) × contrast — grounded − distributional encoder, encoder − best lexical floor (the floor
with the best inner-CV accuracy), lab objective − objective (paired by lab seed). {{ family_size }} contrasts form the
family; Holm corrects them together at α = {{ alpha }}. Intervals and tests resample clusters (scene, image, story),
lab contrasts seeds then clusters. A <span class="gain">gain</span> needs the Holm-corrected paired t-test, the
Holm-corrected sign-flip test and the 95% interval to agree; <em>equivalent</em> (for grounding: resistant) needs the
Holm-corrected TOST within ±{{ "%g" % (100 * rules.margin) }} points; otherwise <em>inconclusive</em>. Cells where
both sides' intervals reach the ceiling or cover chance are <em>uninformative</em> and are not in the family.</p>
{{ table(family) }}
{% else %}<p class="muted">No verdict family: the run has no per-item predictions or no pair of encoders to contrast.</p>{% endif %}

<h2 id="categories">Relation categories</h2>
{% if grounded %}
<p>Grounded encoder(s) in this run: {{ grounded | join(", ") }}. A category <span class="gain">gains</span> from
grounding when at least one grounding row of the verdict family is a gain and none a loss; it is <em>resistant</em>
only when every informative grounding row is shown equivalent (TOST); otherwise <em>inconclusive</em>.</p>
{% if verdicts %}{{ table(verdicts) }}{% endif %}
{% if category_findings %}<ul>{% for f in category_findings %}<li class="{{ f.kind }}-finding">{{ f.text }} <a href="#{{ f.row }}">[row]</a></li>{% endfor %}</ul>{% endif %}
{% else %}
<p><strong>This run has no grounded encoder</strong> (no CLIP encoder and no lab-vision encoder), so it cannot say
which relation types gain from grounding.</p>
{% endif %}
{% for fig in figures.probing_categories %}{{ figure(fig) }}{% endfor %}

<h3 id="baselines">Baselines, chance and selectivity</h3>
{% if baseline_findings or (chance_categories and chance_categories.rows) %}<ul>{% for f in baseline_findings %}<li>{{ f.text }}</li>{% endfor %}</ul>
{% if chance_categories and chance_categories.rows %}<p>Relation categories on which a probe is at chance (its 95% interval covers chance):</p>
{{ table(chance_categories) }}{% endif %}
{% elif accuracy and accuracy.rows %}<p>No probe's interval covers chance, and no probe's selectivity interval covers zero.</p>
{% else %}<p class="muted">No probe accuracies in this run.</p>{% endif %}
{{ table(accuracy) }}
{% if controls %}<h3 id="controls">Controls that misbehave</h3>{{ table(controls) }}{% endif %}
{% if trends %}<h3 id="k-trends">Accuracy by number of hops (k)</h3>
<p>Slope of each item's seed-averaged correctness on k (least squares), with a 95% interval resampling stories.</p>
{{ table(trends) }}{% endif %}
{% for fig in figures.probing %}{{ figure(fig) }}{% endfor %}

<h2 id="rsa">Representational similarity analysis</h2>
{% if rsa_findings %}
<ul>{% for f in rsa_findings %}<li>{{ f.text }}</li>{% endfor %}</ul>
{{ table(rsa) }}
{% else %}<p class="muted">No RSA results in this run.</p>{% endif %}
{% for fig in figures.rsa %}{{ figure(fig) }}{% endfor %}

{% if words %}
<h2 id="words">Meaning over words</h2>
<p>Targets whose answer the words alone cannot give: a converse paraphrase says the same in other words, an argument
swap says the opposite in the same words. A representation that encodes the spatial meaning puts the caption nearer
its paraphrase; one that encodes the words puts it nearer its swap.</p>
{% if words.kinds %}
<h3 id="kinds">The answer per relation kind</h3>
<p>Three questions a bag of words cannot fake: is the relation read off the words (a lexical floor reaches the
encoder), is the caption nearer its converse paraphrase than its argument swap, and does a fact learned from one
wording transfer to the converse wording. Also in <code>kinds.csv</code>.</p>
{% if words.kind_sentences %}<ul>{% for s in words.kind_sentences %}<li>{{ s }}</li>{% endfor %}</ul>{% endif %}
{{ table(words.kinds) }}
{% endif %}
{% if words.meaning_sentences %}<ul>{% for s in words.meaning_sentences %}<li>{{ s }}</li>{% endfor %}</ul>{% endif %}
{% if words.meaning %}{{ table(words.meaning) }}{% endif %}
{% if words.pairs %}<h3 id="caption-pairs">Caption pairs (SugarCrepe, ARO, What'sUp)</h3>{{ table(words.pairs) }}{% endif %}
{% endif %}

{% if lab %}
<h2 id="lab">Grounding lab: matched encoders, three objectives, with and without hard negatives</h2>
<p>Small encoders with the same architecture, data, initial weights and batch order per seed, differing only in the
training objective ({{ lab.objectives }}), read at layer {{ lab.layer }}. Means over {{ lab.n_seeds }} lab seeds with
t intervals across seeds; differences are seed-paired (paired t-test and exact sign-flip over seeds; sign-flip over
test items when predictions are present), Holm-corrected per family.</p>
{% if lab.findings %}<ul>{% for f in lab.findings %}<li>{{ f.text }} <a href="#{{ f.row }}">[row]</a></li>{% endfor %}</ul>{% endif %}
{% for fig in figures.lab %}{{ figure(fig) }}{% endfor %}
{{ table(lab.summary) }}
{{ table(lab.comparisons) }}
<h3 id="lab-answer">The lab's answer per relation kind ({{ lab.label }})</h3>
{% if lab.answer_lines %}<ul>{% for line in lab.answer_lines %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% if lab.answer.rows %}{{ table(lab.answer) }}{% endif %}
{% if lab.training %}<p>Training of the {{ lab.label }}: convergence and retrieval per arm.</p>
{{ table(lab.training) }}{% endif %}
{% if lab.vision_check %}<p>Vision-side sanity check: a linear probe reads the sign of dx / dy between the two objects
from the scene CNN's image embedding (5-fold CV), trained and at its initial weights.</p>
{{ table(lab.vision_check) }}{% endif %}
{% endif %}

{% if replication %}
<h2 id="replication">Replication</h2>
<p>The founding study's protocol, exactly (VSR random split, 7,680 training captions, L2-normalised sentence
embeddings, one-vs-rest logistic regression with C = 1 per relation with ≥ 50 captions, 5 stratified folds; score =
mean macro-F1 over relations), beside the corrected protocol on the same data and relations (standardised features,
C by inner CV, folds grouped by caption text, the all-negative floor, the lexical floor, the concept-disjoint split, paired
tests across relations). Tables: <code>replication/</code>.</p>
{% if replication.findings %}<ul>{% for line in replication.findings %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% if replication.summary_rows %}<div class="scroll"><table><thead><tr>{% for c in replication.summary_columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in replication.summary_rows %}<tr>{% for cell in row %}<td{% if loop.index0 > 2 %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endif %}
{% if replication.erasure %}<h3>What depends on the erased subspace (LEACE)</h3>
<ul>{% for line in replication.erasure %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
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
{% if t and t.rows %}<div class="scroll"><table>{% if t.caption %}<caption class="muted">{{ t.caption }}</caption>{% endif %}
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr{% if t.ids %} id="{{ t.ids[loop.index0] }}"{% endif %}{% if t.highlight and t.highlight[loop.index0] %} class="sig"{% endif %}>
{% for cell in row %}<td{% if t.numeric[loop.index0] %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endif %}
{%- endmacro %}
{% macro figure(f) -%}
<figure id="fig-{{ f.name }}"><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.png }}">
<figcaption><strong>{{ f.title }}.</strong> {{ f.caption }}</figcaption></figure>
{%- endmacro %}
"""
