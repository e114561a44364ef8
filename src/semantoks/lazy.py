"""Package faces that load a submodule only when one of its names is used.

A face that imported its submodules eagerly would load torch for a config check and widen every rule's
code hash (semantoks.provenance) to the whole package; code that needs a name imports its own module.
"""

import importlib


def lazy_names(package, names):
    """(__getattr__, __dir__) of a package whose public `names` map to the submodule that defines each."""

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
