"""The option sections the commands' config trees are composed of, one module per group (the target and where it is
served, the seed inputs, the judge, the regions), each declared once here and taken as they are by the layer that
uses them (``targets``, ``seeds``, ``judges``, ``landscape``). Light to import: the CLI builds its flags from them
before any model library loads."""
