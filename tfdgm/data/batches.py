"""What a batch of a tfdgm pipeline holds, for code that accepts batches from anywhere."""


def images_of(data):
    """The image (or point) tensor of a batch given as `x`, `(x,)`, `(x, y)` or `{"image": x}`."""
    if isinstance(data, dict):
        return data["image"]
    if isinstance(data, (tuple, list)):
        return data[0]
    return data
