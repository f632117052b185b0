"""A pretrained start (`train_classifier --init PATH`): a run's model begins from weights on disk instead of a random
draw. Nothing is downloaded: the file is one the user has (a torchvision state dict, e.g. resnet18's ImageNet
weights saved with torch.save) or a checkpoint of an earlier run of this product (its model.pt).

Every tensor whose name and shape match the model's is taken; the rest stay as drawn. A classifier head for other
classes (ImageNet's 1,000) or a stem built for other image sizes (the product's resnet18 uses a 3x3 stride-1 stem
below 96 px, torchvision's a 7x7) is skipped and said so. A file of which nothing fits is refused.
"""
import torch


class InitError(ValueError):
    """A weights file that cannot start this model; the message names the file's problem."""


def state_dict_of(loaded):
    """The state dict inside what torch.load returned: a plain state dict, or a product checkpoint's "model"."""
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not any(torch.is_tensor(v) for v in loaded.values()):
        raise InitError("it holds no state dict (a mapping of parameter names to tensors)")
    # Weights saved from a DataParallel/compiled model carry a prefix the plain model has not.
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in loaded):
            loaded = {k[len(prefix):]: v for k, v in loaded.items()}
    return {k: v for k, v in loaded.items() if torch.is_tensor(v)}


def init_weights(model, loaded, *, arch="the model"):
    """Copy every tensor of `loaded` (see state_dict_of) whose name and shape match into `model`. Returns
    {"loaded": n, "of": tensors in the model, "skipped": [names in the file not taken]}; InitError if none fits."""
    source = state_dict_of(loaded)
    own = model.state_dict()
    fits = {k: v for k, v in source.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fits:
        raise InitError(f"none of its {len(source)} tensors fits {arch} (names or shapes differ): it is not weights "
                        f"for this architecture")
    with torch.no_grad():
        for name, value in fits.items():
            own[name].copy_(value.to(own[name].dtype))
    return {"loaded": len(fits), "of": len(own), "skipped": sorted(set(source) - set(fits))}
