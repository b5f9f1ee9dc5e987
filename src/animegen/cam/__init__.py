"""CAM-based selection of training images (study C): a class classifier, its Grad-CAM maps, and scores.

``scores`` is numpy only (the concentration scores and the selection rule); ``classifier`` builds and
trains the classifier; ``gradcam`` computes Grad-CAM maps with the ``grad-cam`` library and draws
overlay grids.
"""
