"""modelcore backend for TensorFlow SavedModels: Keras 3 models, tf.Modules and SavedModel folders.

Importing this package does not import TensorFlow; the hooks do, when a
TensorFlow model is saved or loaded.
"""

from modelcore_tensorflow.client import TensorFlowClient
from modelcore_tensorflow.convert import PayloadError
from modelcore_tensorflow.deployer import deploy_tensorflow_model
from modelcore_tensorflow.model import TensorFlowModel

__all__ = ["PayloadError", "TensorFlowClient", "TensorFlowModel", "deploy_tensorflow_model"]
