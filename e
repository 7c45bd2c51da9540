/dev/fd/3: line 44: run: command not found
