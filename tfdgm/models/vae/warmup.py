"""KL warm-up (Bowman et al. 2016; Sonderby et al. 2016): the VAE's `beta` rises linearly."""

import keras

from tfdgm.models.vae.objectives import linear_warmup


class KLWarmup(keras.callbacks.Callback):
    """Sets the model's `beta = min(1, epoch / warmup_epochs)` at the start of each epoch."""

    def __init__(self, warmup_epochs: int):
        super().__init__()
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(linear_warmup(epoch, self.warmup_epochs))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the epoch's beta goes into the run's history
            logs["beta"] = float(self.model.beta.numpy())
