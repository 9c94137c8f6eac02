"""SceneJob `worldexplorer` (the lab's worldexplorer): the 8-view 360° scaffold, trajectory expansion with geometry,
then the gaussians stage. Pure modules (numpy, OpenCV) carry the decisions; the stage modules do the I/O."""
