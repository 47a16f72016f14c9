"""modelcore backend for MXNet 1.9 (Module checkpoints and Gluon HybridBlocks).

Importing this package does not import mxnet: the server's own environment
(numpy 2) cannot import it at all, and serves MXNet models through an isolated
worker whose environment pins ``mxnet==1.9.1`` and ``numpy<1.24``.
"""

from __future__ import annotations

from modelcore_mxnet.deployer import deploy_mxnet_model

__all__ = ["deploy_mxnet_model"]
