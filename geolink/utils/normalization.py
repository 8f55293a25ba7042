"""ImageNet input statistics: what every image is normalised with (training, evaluation, the
ONNX contract, the torch-free localizer). One definition; no imports."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
