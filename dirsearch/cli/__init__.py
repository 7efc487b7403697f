"""The command line: one module of argparse verbs per area (sweeps, train, data, ui), user errors
turned into exit code 2. The only layer that may import every other one."""
