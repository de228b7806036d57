"""The Workbench's grids (Qt-free): grid files in promptfoo's vocabulary (:mod:`.config`),
test cases and assertions (:mod:`.cases`, :mod:`.assertions`), the runner over the run
scheduler (:mod:`.runner`), the store of past runs (:mod:`.store`) and exports (:mod:`.export`)."""
