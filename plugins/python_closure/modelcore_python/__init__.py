"""modelcore backend for pure-Python predict functions (cloudpickled closures)."""

from modelcore.deploy import deploy_python_closure

__all__ = ["deploy_python_closure"]
