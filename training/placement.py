"""Where the images live while a model reads them, and how batches get to the device: pick_device, and
choose_placement's rule between copying the whole uint8 array (N, S, S, 3) to the device once (DeviceImages) and
streaming it batch by batch from host memory, a memory-mapped cache included (StreamedImages: a background thread
gathers the next batches, into pinned buffers copied on a side stream on CUDA). The training loop
(training/engine.py), SSL pretraining, CycleGAN training and scoring all read their images through here."""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from training.malloc import fix_mmap_threshold

# Every process that trains or scores imports this module (the training loop through training.engine): keep its
# heap from growing with the batches it reads.
fix_mmap_threshold()


def pick_device(name=None):
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device_u8(images, device):
    """(N, S, S, 3) uint8 numpy -> (N, 3, S, S) uint8 tensor on device (kept as bytes: 4x smaller than float)."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)


# --- where the images live while a model reads them ------------------------------------------------------------

MODES = ("auto", "device", "stream")
DEFAULT_DEVICE_SHARE = 0.5
COPY_CHUNK = 4096  # images per host -> device copy when a cache is placed on the device


@dataclass(frozen=True)
class Placement:
    mode: str  # "device": the whole array copied to the device once; "stream": batches gathered from host memory
    reason: str

    def __str__(self):
        return f"{self.mode} ({self.reason})"

    def to_dict(self):
        return {"mode": self.mode, "reason": self.reason}


def device_share(share=None):
    """The share of the device's memory the images may take on it: `share`, else FER_CACHE_DEVICE_SHARE, else 0.5."""
    raw = share if share is not None else os.environ.get("FER_CACHE_DEVICE_SHARE", DEFAULT_DEVICE_SHARE)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FER_CACHE_DEVICE_SHARE must be a number in (0, 1]; got {raw!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"the device share for the tensor cache must be in (0, 1]; got {value}")
    return value


def cache_mode(mode=None):
    mode = mode or os.environ.get("FER_CACHE_MODE") or "auto"
    if mode not in MODES:
        raise ValueError(f"FER_CACHE_MODE must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def choose_placement(nbytes, device, *, mode=None, share=None):
    """Device or stream, and why. The rule:

    - `mode` (else FER_CACHE_MODE) "device" or "stream" forces it;
    - on a CUDA device: "device" when the images take at most `share` (FER_CACHE_DEVICE_SHARE, default 0.5) of
      the device's total memory and less than what is free on it now, else "stream" (pinned host memory, the next
      batch's copy overlapped with this batch's compute);
    - on the CPU the device's memory is host RAM, where the memory-mapped cache already is (in the page cache):
      "stream", reading each batch from it, since a device copy would only add the whole array again as anonymous
      memory and no speed (the CPU reads the page cache as fast as its own copy).
    """
    device = torch.device(device)
    mode, mb = cache_mode(mode), nbytes / 2**20
    if mode != "auto":
        return Placement(mode, f"{mb:.0f} MiB of images; {mode} mode asked for (mode / FER_CACHE_MODE)")
    if device.type == "cuda":
        share = device_share(share)
        free, total = torch.cuda.mem_get_info(device)
        limit = share * total
        if nbytes <= limit and nbytes < free:
            return Placement("device", f"{mb:.0f} MiB of images fit under {share:g} of the GPU's "
                                       f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
        return Placement("stream", f"{mb:.0f} MiB of images exceed {share:g} of the GPU's {total / 2**30:.1f} GiB "
                                   f"or its {free / 2**30:.1f} GiB free: batches stream from pinned host memory")
    return Placement("stream", f"{mb:.0f} MiB of images; on the CPU the device is host RAM, where the memory-"
                               f"mapped cache already is: batches are read from it, not copied whole")


class DeviceImages:
    """Images (N, S, S, 3) uint8 (rows `index` of them, when given) copied to the device once, in chunks."""

    mode = "device"

    def __init__(self, images, device, index=None):
        self.device = torch.device(device)
        if isinstance(images, torch.Tensor):  # already (N, 3, S, S) on the device
            self.x = images if index is None else images[torch.as_tensor(index, device=images.device)]
            return
        n = len(images) if index is None else len(index)
        size = images.shape[1:]
        out = torch.empty((n, *size), dtype=torch.uint8, device=self.device)
        for start in range(0, n, COPY_CHUNK):
            rows = slice(start, start + COPY_CHUNK) if index is None else np.asarray(index)[start : start + COPY_CHUNK]
            out[start : start + COPY_CHUNK].copy_(torch.from_numpy(np.array(images[rows])))  # a chunk at a time
        self.x = out.permute(0, 3, 1, 2)

    def __len__(self):
        return self.x.shape[0]

    @property
    def shape(self):
        return self.x.shape

    def __getitem__(self, idx):
        if isinstance(idx, np.ndarray):
            idx = torch.as_tensor(idx, device=self.x.device)
        return self.x[idx]

    def batches(self, order, bounds):
        """Yield (B, 3, S, S) uint8 device tensors: rows order[a:b] (a:b when order is None) for (a, b) in bounds."""
        for a, b in bounds:
            yield self.x[a:b] if order is None else self.x[order[a:b]]


class StreamedImages:
    """Images (N, S, S, 3) uint8 in host memory (a memory-mapped cache, rows `index` when given), gathered batch
    by batch and sent to the device. A background thread gathers the next `prefetch` batches while the current
    one computes; on CUDA it gathers into pinned buffers and copies on a side stream (non-blocking), so the copy
    overlaps the compute too. On the CPU a yielded batch is a view of a reused buffer: it stays valid until the
    batch after the next one is asked for (every reader here turns it into floats at once)."""

    mode = "stream"

    def __init__(self, images, device, index=None, prefetch=2):
        if isinstance(images, torch.Tensor):
            raise TypeError("StreamedImages reads a host array (N, S, S, 3), not a tensor")
        self.images, self.device, self.prefetch = images, torch.device(device), prefetch
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self):
        return len(self.images) if self.index is None else len(self.index)

    @property
    def shape(self):
        s = self.images.shape
        return (len(self), s[3], s[1], s[2])

    def _rows(self, order, a, b):
        rows = np.arange(a, b) if order is None else order[a:b]
        return rows if self.index is None else self.index[rows]

    def __getitem__(self, idx):
        """Rows idx (an index tensor or array) as one (B, 3, S, S) device tensor, gathered now (no overlap)."""
        idx = idx.cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
        rows = idx if self.index is None else self.index[idx]
        return torch.from_numpy(np.take(self.images, rows, axis=0)).to(self.device).permute(0, 3, 1, 2)

    def batches(self, order, bounds):
        order = None if order is None else (order.cpu().numpy() if isinstance(order, torch.Tensor) else order)
        bounds = list(bounds)
        if not bounds:
            return
        cuda = self.device.type == "cuda"
        widest = max(b - a for a, b in bounds)
        if cuda:
            slots = [torch.empty((widest, *self.images.shape[1:]), dtype=torch.uint8).pin_memory()
                     for _ in range(self.prefetch + 1)]
            freed = [None] * len(slots)  # per slot: the event after which its last copy has finished
            copy_stream = torch.cuda.Stream(self.device)
        else:
            # Batches are gathered into prefetch + 2 buffers taken in turn, not a new array each: a batch stays
            # valid until the one after the next is asked for, and the heap does not grow with the batches read
            # (fresh multi-MB arrays freed by another thread fragmented glibc's heap: scoring 12,000 images grew by
            # 586 MiB against 335 MiB for 4,000; with the buffers 378 against 360).
            buffers = [np.empty((widest, *self.images.shape[1:]), dtype=np.uint8) for _ in range(self.prefetch + 2)]

        def load(k):
            a, b = bounds[k]
            rows = self._rows(order, a, b)
            if not cuda:
                out = buffers[k % len(buffers)][: len(rows)]
                np.take(self.images, rows, axis=0, out=out)
                return torch.from_numpy(out), None
            slot = k % len(slots)
            if freed[slot] is not None:
                freed[slot].synchronize()
            host = slots[slot][: len(rows)]
            np.take(self.images, rows, axis=0, out=host.numpy())
            with torch.cuda.stream(copy_stream):
                dev = host.to(self.device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(copy_stream)
            freed[slot] = done
            return dev, done

        pool = ThreadPoolExecutor(1, thread_name_prefix="stream")
        pending = deque()
        try:
            for k in range(min(self.prefetch, len(bounds))):
                pending.append(pool.submit(load, k))
            for k in range(len(bounds)):
                x, done = pending.popleft().result()
                if k + self.prefetch < len(bounds):
                    pending.append(pool.submit(load, k + self.prefetch))
                if cuda:
                    stream = torch.cuda.current_stream(self.device)
                    stream.wait_event(done)
                    x.record_stream(stream)
                else:
                    x = x.to(self.device)
                yield x.permute(0, 3, 1, 2)
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)


def place_images(images, device, *, index=None, mode=None, share=None, placement=None):
    """(DeviceImages or StreamedImages, Placement) for host images (N, S, S, 3) uint8, rows `index` when given.
    A tensor already on the device stays there."""
    if isinstance(images, (DeviceImages, StreamedImages)):
        return images, Placement(images.mode, "placed by the caller")
    if isinstance(images, torch.Tensor):
        return DeviceImages(images, device, index), Placement("device", "a tensor already on the device")
    per_image = int(np.prod(images.shape[1:], dtype=np.int64))
    n = len(images) if index is None else len(index)
    if placement is None:
        placement = choose_placement(n * per_image, device, mode=mode, share=share)
    cls = DeviceImages if placement.mode == "device" else StreamedImages
    return cls(images, device, index), placement


def as_source(x_u8, device):
    """x_u8 as placed images: a DeviceImages / StreamedImages as it is, anything else through place_images."""
    return x_u8 if isinstance(x_u8, (DeviceImages, StreamedImages)) else place_images(x_u8, device)[0]


def iter_batches(images, device, batch_size, *, index=None, mode=None):
    """(B, 3, S, S) uint8 device tensors over images in order, batch_size at a time (single-pass readers: these
    stream unless mode says "device")."""
    source, _ = place_images(images, device, index=index, mode=mode or "stream")
    n = len(source)
    return source.batches(None, [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)])
