"""The task-defined split policies: held-out wordings and converse transfer."""

import numpy as np
import pytest

from spatial_probing.probe.splits import SPLIT_POLICIES, converse_side, outer_folds, wording_side


def test_wording_side() -> None:
    kw = {"heldout_templates": (2, 5), "heldout_phrases": (2,)}
    assert wording_side(2, 2, **kw) == "test" and wording_side(0, 1, **kw) == "train"
    assert wording_side(2, 0, **kw) is None and wording_side(0, 2, **kw) is None  # mixed wordings are left out


def test_converse_side() -> None:
    kw = {"train_relations": ("left of",), "test_relations": ("right of",)}
    assert converse_side("left of", "train", **kw) == "train" and converse_side("right of", "test", **kw) == "test"
    assert converse_side("right of", "train", **kw) is None and converse_side("left of", "test", **kw) is None
    assert converse_side("near", "train", **kw) is None and converse_side("left of", "dev", **kw) is None


@pytest.mark.parametrize("policy", ["heldout-wording", "converse-transfer"])
def test_task_defined_policies_use_the_item_sides(policy: str) -> None:
    assert policy in SPLIT_POLICIES
    (fold,) = outer_folds(policy, ["train", "test", "train", "test"], [("a", "b")] * 4)
    assert np.array_equal(fold.train, [0, 2]) and np.array_equal(fold.test, [1, 3])
    with pytest.raises(ValueError, match="both must be non-empty"):
        outer_folds(policy, ["train", "train"], [("a", "b")] * 2)
