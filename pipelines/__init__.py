"""Find media, decode and sample frames, and schedule the vision stages on Dask."""
