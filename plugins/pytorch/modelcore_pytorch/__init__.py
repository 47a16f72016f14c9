"""modelcore backend for PyTorch modules.

Importing this package does not import torch: the deployer and the plugin's
hooks import it when they run.
"""

from __future__ import annotations

from modelcore_pytorch.deployer import deploy_pytorch_model

__all__ = ["deploy_pytorch_model"]
