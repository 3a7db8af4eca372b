"""dama_det: DAMA self-supervised pretraining and Detectron2 Mask R-CNN for cell
instance segmentation in multiplexed immunofluorescence images."""
from .errors import DamaUserError

__version__ = "0.1.0"

__all__ = ["DamaUserError", "__version__"]
