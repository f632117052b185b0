"""The CycleGAN quality instrument (no Django): how often a classifier calls a generator's outputs the target
emotion, beside how often it calls the untouched sources so, and how much of the source survives (mean SSIM)."""
import torch

from gan.ssim import ssim


def quality(model, direction, sources_u8, target, classify):
    """Target-class rate of the generated images and of their sources, and mean SSIM(source, generated).

    model: a gan.cyclegan.CycleGAN; direction "AB" or "BA"; sources_u8: (N, S, S, 3) uint8 numpy; target: the
    class code; classify: uint8 (N, S, S, 3) -> probabilities (N, C), or None to measure SSIM only."""
    src = torch.from_numpy(sources_u8).permute(0, 3, 1, 2)
    out = model.translate(src.to(model.device), direction).cpu()
    scores = ssim(src.float(), out.float(), data_range=255, grey=True)
    generated = out.permute(0, 2, 3, 1).numpy()
    result = {"ssim_to_source": float(scores.mean())}
    if classify is not None:
        result["target_rate"] = float((classify(generated).argmax(1) == target).mean())
        result["source_target_rate"] = float((classify(sources_u8).argmax(1) == target).mean())
    return result
