"""Studies in: ingest (DICOM and pictures), de-identification, the frozen study types."""
