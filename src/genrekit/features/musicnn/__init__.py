"""musicnn (Pons & Serra, 2019) in PyTorch: the network (:mod:`.network`), its TensorFlow
checkpoint reader and converter (:mod:`.tfcheckpoint`, :mod:`.weights`), embeddings and
taggrams of audio (:mod:`.embedding`, :mod:`.sequence`, :mod:`.tags`).
"""
