"""Files: Caffe LMDBs and BlobProtos, image lists, mean files, text inputs, downloads, and the
manifests that say what an output was built from; every write atomic."""
