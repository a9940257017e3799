complete --keep-order --exclusive --command crimg --arguments "(COMPLETE=fish crimg -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
