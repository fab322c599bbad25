"""fade-hub: discover, summarize and fade the failure modes of Hugging Face models.

The Python API mirrors the CLI (``fade-hub COMMAND`` ↔ ``fade_hub.COMMAND``)::

    from fade_hub import CheckConfig, CompareConfig, ExploreConfig, MitigateConfig
    from fade_hub import check, compare, explore, feedback, mitigate, open_run, push
    run = explore(ExploreConfig(model="user/my-vit", seeds="user/my-images", budget=1000))
    push(run.path, "user/my-vit-failures")
    verdicts = feedback.load("user/my-vit-feedback").resolved()
    variant = mitigate(MitigateConfig(run="user/my-vit-failures", feedback=["user/my-vit-feedback"], output="faded",
                                      recheck=True))
    print(compare(CompareConfig(run_a="user/my-vit-failures", run_b="faded-recheck")).counts)
    check(CheckConfig(run="faded-recheck", against="user/my-vit-failures")).passed

Names load on first use, so ``import fade_hub`` stays light (no torch until a model is needed).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "ExploreConfig": "fade_hub.explore.config",
    "explore": "fade_hub.explore.runner",
    "MitigateConfig": "fade_hub.mitigate.config",
    "mitigate": "fade_hub.mitigate.restructure",
    "pull": ("fade_hub.pull_variant", "pull"),
    "push": ("fade_hub.hub", "push_run"),
    "push_adapter": "fade_hub.mitigate.publish",
    "open_run": ("fade_hub.run", "Run.open"),
    "Run": "fade_hub.run",
    "ConceptSpace": "fade_hub.perturb.concepts",
    "load_space": "fade_hub.perturb.builtin",
    "load_target": "fade_hub.targets",
    "feedback": ("fade_hub.feedback", None),
    "serve_feedback_app": ("fade_hub.feedback.deploy", "serve"),
    "deploy_feedback_space": ("fade_hub.feedback.deploy", "deploy"),
    "run_demo": "fade_hub.demo.run",
    "CompareConfig": "fade_hub.comparison",
    "compare": "fade_hub.comparison",
    "CheckConfig": "fade_hub.gate",
    "check": "fade_hub.gate",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(name)
    from importlib import import_module

    where = _EXPORTS[name]
    module_name, attribute = where if isinstance(where, tuple) else (where, name)
    module = import_module(module_name)
    if attribute is None:
        return module
    value = module
    for part in attribute.split("."):
        value = getattr(value, part)
    return value
