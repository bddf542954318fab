"""Frechet Inception Distance with pytorch-fid's network, in layers like pytorch-fid's own:
images -> pool3 features (`features`) -> (mu, sigma) (`frechet.activation_statistics`) ->
distance (`frechet.frechet_distance`), plus cached reference statistics (`stats`) and the
`cifar fid` workflow (`scoring`). See docs/CONTRACTS.md."""

from cifar_core.fid.features import (
    FeatureExtractor,
    as_nchw_uint8,
    load_image_folder,
    load_images,
    load_inception,
    load_npz_images,
)
from cifar_core.fid.frechet import activation_statistics, frechet_distance, trace_sqrt_product
from cifar_core.fid.inception import (
    FEATURE_DIMS,
    FEATURE_LAYER,
    WEIGHTS_ENV,
    WEIGHTS_FILENAME,
    WEIGHTS_URL,
    build_fid_inception,
    hub_weights_path,
    random_fid_weights,
    resolve_weights,
    write_random_weights,
)
from cifar_core.fid.stats import FidStatistics, fid_of_images, reference_statistics, statistics_of_images

__all__ = [
    "FEATURE_DIMS",
    "FEATURE_LAYER",
    "WEIGHTS_ENV",
    "WEIGHTS_FILENAME",
    "WEIGHTS_URL",
    "FeatureExtractor",
    "FidStatistics",
    "activation_statistics",
    "as_nchw_uint8",
    "build_fid_inception",
    "fid_of_images",
    "frechet_distance",
    "hub_weights_path",
    "load_image_folder",
    "load_images",
    "load_inception",
    "load_npz_images",
    "random_fid_weights",
    "reference_statistics",
    "resolve_weights",
    "statistics_of_images",
    "trace_sqrt_product",
    "write_random_weights",
]
