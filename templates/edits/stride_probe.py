# Inserted after `s = 256` in DetectionModel.__init__.
s = bbpatch_probe_size(self.model, s)
