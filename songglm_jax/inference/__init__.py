"""Lyrics -> songs with a trained model: whole-song generation (``generation``, its options and
validity rules in ``generation_rules``), infilling part of a song (``infill``, the spans in
``infill_spec``), lyrics text (``lyrics``), sample folders and piano rolls (``sample_files``,
``pianoroll``), and the runs from a workdir's checkpoint to files that ``generate`` drives
(``generate_run``, ``infill_run``)."""
