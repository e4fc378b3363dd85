"""The command line: argument parsing and printing only; every command calls the library."""
