"""Host <-> graph I/O Processes: graded input frames in, spike counts and potentials out."""
