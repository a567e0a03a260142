"""Storage: Kedro datasets (folders, images, reports, models), image decoding, the saved stages of a dataset."""
