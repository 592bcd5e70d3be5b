"""The models: what bbpatch knows of backbones and YAMLs, without building anything in this process.

``catalog`` lists the backbone families and where bbpatch's data files are; ``roles`` reads the role a module
class declares; ``yamlgen`` derives model YAMLs from heads (``yaml_bases`` finds the stock YAML a derived one
needs, ``base_model``, ``strides`` and ``layer_probe`` measure a base YAML's layers in a subprocess).
"""
