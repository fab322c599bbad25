"""Option values that configs (CLI flags) and the modules using them share, importable without torch."""

AUTO = "auto"
DTYPE_NAMES = ("float32", "float16", "bfloat16")
DTYPE_CHOICES = (AUTO, *DTYPE_NAMES)
GENERATION_ROUTES = (AUTO, "chat", "text-generation")
