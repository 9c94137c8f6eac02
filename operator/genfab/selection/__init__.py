"""The human side of worldexplorer's manual selection gate (its rules are genfab.sequencing.manual):
which samples wait for a choice (`waiting`), applying choices to an output (`choices`: `genfab select`
and the page share it), and the review page (`review`: `genfab review`)."""
