"""Hand pose from depth: capsule-hand renderer, Kinect stand-in, NYU reader, stacked
hourglass, joint metrics."""
