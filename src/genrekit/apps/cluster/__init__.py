"""``genrekit predict --ray`` and ``genrekit embed --ray``: the local pipeline as a Ray Data job.

    file list -> decoding tasks -> actor pool holding the model -> write_parquet (or JSON lines)

* :mod:`.inputs`: the file list, made on the driver (files, folders and globs as on one
  machine, ``--files-from`` lists, ``pyarrow.fs`` URIs such as ``s3://bucket/music/``). Entries
  of a list are taken as they are, not checked on the driver: a missing file becomes an error row.
* :mod:`.stages`: decoding tasks (1 CPU each) run :func:`genrekit.inference.batch.decode_segments`,
  the decoder and segmenter of the local path. An actor pool holds the model, loaded once per
  actor with ``torch.set_num_threads`` set to the actor's CPUs (or on a GPU), and runs
  :func:`~genrekit.inference.predict.classify_segments` and
  :func:`~genrekit.inference.predict.summarize`. So results are those of ``genrekit predict`` on
  one machine; only how windows are batched through the network differs (the last digit of a
  float32 may).
* :mod:`.output`: a folder of Parquet files (``-o out.parquet``): one row per file for
  ``predict`` (the fields of the JSON contract, plus ``fingerprint``, ``model`` and ``node``), one
  row per segment for ``embed`` (:mod:`genrekit.data.embed`). A file that fails gives a row with
  ``path`` and ``error``. Other ``-o`` names and stdout get the local writers (JSON lines, JSON,
  CSV, table). Resuming: run the same command again. Files already in the output folder with the
  same path and fingerprint (size and modification time) are skipped.
* Nothing stops a job. A failing file is an error row. A worker that dies (a crashing decoder,
  the out-of-memory killer, a lost node) is replaced and its batch retried by Ray; a retried
  batch goes file by file, telling a small ledger actor which file it is on, so a file that was
  being processed when a worker died twice becomes an error row instead of killing a third.
* :mod:`.pipeline`: connecting to the cluster, planning the actor pool, running the dataset,
  :func:`~.pipeline.predict_on_ray` and :func:`~.pipeline.embed_on_ray`.

Only the command line uses this package. Ray is an optional extra, imported inside functions;
importing this package loads neither Ray nor torch.
"""
