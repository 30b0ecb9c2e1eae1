"""Eye gaze: 35x55 grayscale eyes, unit gaze vectors (MPIIGaze convention). Renderer,
stand-in real appearance, readers (UnityEyes, MPIIGaze, folders), gaze CNN, metrics."""
