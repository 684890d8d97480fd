// The simulator draws from the run's one root seed: its users see the generator too.
@_exported import HPTRandom
