"""Video decoding, face detection and tracking, 68-point landmark backends."""
