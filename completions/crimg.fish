complete --keep-order --exclusive --command crimg --arguments "(CRIMG_COMPLETE=fish crimg -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
