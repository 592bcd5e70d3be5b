# Inserted before BaseModel.fuse's fusion loop.
bbpatch_reparameterize(self)
