"""Files: Caffe LMDBs and BlobProtos, image lists, mean files, text inputs, downloads, prototxt,
a solver's snapshots, and the manifests that say what an output was built from; every write
atomic."""
