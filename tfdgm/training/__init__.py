"""Training: the strategy, the callbacks, the custom multi-worker loop and `train_and_evaluate`."""
