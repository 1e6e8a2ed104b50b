"""Files in and out: image decoding, dataset listing, atomic writes, where files live,
thumbnails."""
