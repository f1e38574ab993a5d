//! TODO: the ONNX importer.
