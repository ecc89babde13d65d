"""Test session setup: quiet TensorFlow logs and split the CPU into two logical devices.

Splitting must happen before TensorFlow initializes its devices, so it is done here, at the start
of the pytest session, for every test: tests that need two replicas (tf.distribute) use them and
all others run on the first.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Datasets the tests prepare go to a scratch TFDS directory, never the user's.
os.environ.setdefault("TFDS_DATA_DIR", tempfile.mkdtemp(prefix="tfdgm-tfds-"))
if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers must not prepare into one folder
    os.environ["TFDS_DATA_DIR"] = os.path.join(os.environ["TFDS_DATA_DIR"],
                                               os.environ["PYTEST_XDIST_WORKER"])
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
