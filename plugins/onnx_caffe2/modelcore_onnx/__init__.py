"""modelcore backend for ONNX models run by ONNX Runtime (Clipper's Caffe2/ONNX deployer).

Importing this package imports neither onnx, onnxruntime nor torch.
"""

from modelcore_onnx.deploy import deploy_onnx_model, deploy_pytorch_model

__all__ = ["deploy_onnx_model", "deploy_pytorch_model"]
