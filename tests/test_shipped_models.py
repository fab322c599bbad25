"""The shipped fixture models (``tests/shipped_models.py``) are the bytes their recipes train now."""

from __future__ import annotations

import pytest
from shipped_models import FINGERPRINT, RECIPES, SHIPPED, fresh


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_shipped_model_matches_its_recipe(name):
    assert fresh(name) is not None, (
        f"tests/data/models/{name} is stale or missing: its recipe's sources changed, so the suite trains it in every "
        f"run; rebuild it with `python tests/shipped_models.py {name}` and commit the folder"
    )
    assert any((SHIPPED / name).rglob("*.safetensors"))


def test_nothing_unknown_is_shipped():
    assert sorted(p.name for p in SHIPPED.iterdir()) == sorted(RECIPES)


def test_a_stale_model_is_trained_instead_of_copied(tmp_path, monkeypatch):
    """A recipe whose sources changed is not used: ``place`` trains the model in the session instead."""
    import shipped_models

    recipe = RECIPES["sentiment-cased"]
    changed = shipped_models.Recipe(recipe.builder, recipe.sources, {**recipe.kwargs, "steps": 2})
    monkeypatch.setitem(RECIPES, "sentiment-cased", changed)
    assert fresh("sentiment-cased") is None
    placed = shipped_models.place("sentiment-cased", tmp_path / "model")
    assert (placed / "model.safetensors").is_file() and not (placed / FINGERPRINT).exists()
    shipped = (SHIPPED / "sentiment-cased" / "model.safetensors").read_bytes()
    assert (placed / "model.safetensors").read_bytes() != shipped  # two steps of training, not the shipped bytes
