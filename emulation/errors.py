"""The one error an emulation's build raises: what could not be built, and why."""


class BuildError(RuntimeError):
    """The emulation could not be built; nothing of it is left behind."""
