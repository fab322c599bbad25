"""The seeds a mitigation measures on: compared with the others by content, and enough of them to show one point."""

from __future__ import annotations

import logging

from PIL import Image

from fade_hub.mitigate.seeds import fingerprint, warn_if_small
from fade_hub.seeds import Seed


def test_a_seed_is_known_by_its_content_and_label_not_its_id():
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    same = Seed("eval:renamed.png", image.copy(), label=0, label_name="circle")
    assert fingerprint(Seed("circle/000.png", image, label=0, label_name="circle")) == fingerprint(same)
    assert fingerprint(same) != fingerprint(Seed("x", image, label=1, label_name="square"))  # another label
    other = image.copy()
    other.putpixel((0, 0), (10, 20, 31))
    assert fingerprint(same) != fingerprint(Seed("x", other, label=0, label_name="circle"))  # one pixel
    assert fingerprint(Seed("a", "the film is good.")) == fingerprint(Seed("b", "the film is good."))
    assert fingerprint(Seed("a", "the film is good.")) != fingerprint(Seed("a", "the film is good!"))


def test_too_few_evaluation_seeds_for_a_one_point_change_are_said_with_the_interval_width(caplog):
    with caplog.at_level(logging.WARNING, logger="fade_hub.mitigate.seeds"):
        warn_if_small(2, given=False)
        warn_if_small(40, given=True)
        warn_if_small(381, given=False)
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("evaluating on 2 seeds: a clean rate measured on them has a 95% interval at least 66 "
                            "points wide") and "--eval-seeds SRC with seeds never explored or trained on (381" in first
    assert "at least 9 points wide" in second and "--eval-seeds with more seeds (381 or more)" in second
    assert len(caplog.records) == 2  # 381 seeds can show one point
