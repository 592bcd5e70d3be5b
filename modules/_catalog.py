"""The whole-backbone names users type in model YAMLs, and the timm model behind each.

Pure data with no imports: ``timm_backbones.py`` turns every row into a class, and ``bbpatch.models.catalog``
reads this file without importing torch (for ``bbpatch yaml``).
"""

#  YAML name                    timm model                    family
BACKBONES = (
    ("mobilenetv4_small", "mobilenetv4_conv_small", "mobilenetv4"),  # seed 000 names
    ("mobilenetv4_medium", "mobilenetv4_conv_medium", "mobilenetv4"),
    ("mobilenetv4_large", "mobilenetv4_conv_large", "mobilenetv4"),
    ("mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_medium", "mobilenetv4"),
    ("mobilenetv4_hybrid_large", "mobilenetv4_hybrid_large", "mobilenetv4"),
    ("MobileNetV4ConvSmall", "mobilenetv4_conv_small", "mobilenetv4"),  # community copies
    ("MobileNetV4ConvMedium", "mobilenetv4_conv_medium", "mobilenetv4"),
    ("MobileNetV4ConvLarge", "mobilenetv4_conv_large", "mobilenetv4"),
    ("MobileNetV4HybridMedium", "mobilenetv4_hybrid_medium", "mobilenetv4"),
    ("MobileNetV4HybridLarge", "mobilenetv4_hybrid_large", "mobilenetv4"),
    ("MobileNetV4ConvSmall_050", "mobilenetv4_conv_small_050", "mobilenetv4"),  # width variants: timm's suffix
    # Seed 001 returns the maps whose channels are 16, 24, 48, 576: MobileNetV3-Small's.
    ("MobileNetV3", "mobilenetv3_small_100", "mobilenetv3"),
    ("MobileNetV3Small", "mobilenetv3_small_100", "mobilenetv3"),
    ("MobileNetV3Large", "mobilenetv3_large_100", "mobilenetv3"),
    ("MobileNetV3Small_075", "mobilenetv3_small_075", "mobilenetv3"),
    # Seed 002's default configuration (embed 96, depths 1-2-8-2, ReLU) is FasterNet-T2.
    ("FasterNet", "fasternet_t2", "fasternet"),
    ("FasterNetT0", "fasternet_t0", "fasternet"),
    ("FasterNetT1", "fasternet_t1", "fasternet"),
    ("FasterNetT2", "fasternet_t2", "fasternet"),
    ("FasterNetS", "fasternet_s", "fasternet"),
    ("FasterNetM", "fasternet_m", "fasternet"),
    ("FasterNetL", "fasternet_l", "fasternet"),
    ("MobileOneS0", "mobileone_s0", "mobileone"),
    ("MobileOneS1", "mobileone_s1", "mobileone"),
    ("MobileOneS2", "mobileone_s2", "mobileone"),
    ("MobileOneS3", "mobileone_s3", "mobileone"),
    ("MobileOneS4", "mobileone_s4", "mobileone"),
    ("MobileNetV1", "mobilenetv1_100", "mobilenetv1"),
    ("MobileNetV1_125", "mobilenetv1_125", "mobilenetv1"),
    ("MobileNetV2", "mobilenetv2_100", "mobilenetv2"),
    ("MobileNetV2_050", "mobilenetv2_050", "mobilenetv2"),
    ("MobileNetV2_140", "mobilenetv2_140", "mobilenetv2"),
)

# The variant a family's ready-made YAMLs use (yamls/<head>-<family>.yaml).
FAMILY_DEFAULTS = {
    "mobilenetv4": "mobilenetv4_small",
    "mobilenetv3": "MobileNetV3",
    "fasternet": "FasterNet",
    "mobileone": "MobileOneS0",
    "mobilenetv1": "MobileNetV1",
    "mobilenetv2": "MobileNetV2",
}

# The variant each scale letter builds in a family's ready-made YAMLs (written there as 'backbone_scales'), so
# that a family's n model is its fast end and x its largest, as the head's width already follows the letter.
# Every variant has ImageNet weights on timm's hub. RT-DETR YAMLs have one scale and use the family default.
FAMILY_SCALES = {
    "mobilenetv4": dict(
        n="MobileNetV4ConvSmall_050",
        s="mobilenetv4_small",
        m="mobilenetv4_medium",
        l="mobilenetv4_large",
        x="mobilenetv4_large",
    ),
    "mobilenetv3": dict(
        n="MobileNetV3Small_075", s="MobileNetV3Small", m="MobileNetV3Large", l="MobileNetV3Large", x="MobileNetV3Large"
    ),
    "fasternet": dict(n="FasterNetT0", s="FasterNetT1", m="FasterNetT2", l="FasterNetS", x="FasterNetM"),
    "mobileone": dict(n="MobileOneS0", s="MobileOneS1", m="MobileOneS2", l="MobileOneS3", x="MobileOneS4"),
    "mobilenetv1": dict(n="MobileNetV1", s="MobileNetV1", m="MobileNetV1", l="MobileNetV1_125", x="MobileNetV1_125"),
    "mobilenetv2": dict(
        n="MobileNetV2_050", s="MobileNetV2", m="MobileNetV2", l="MobileNetV2_140", x="MobileNetV2_140"
    ),
}

# Channels of the stride 4, 8, 16, 32 maps, as timm's feature_info reports them (tests check this table).
TIMM_CHANNELS = {
    "mobilenetv4_conv_small": (32, 64, 96, 960),
    "mobilenetv4_conv_small_050": (16, 32, 48, 480),
    "mobilenetv4_conv_medium": (48, 80, 160, 960),
    "mobilenetv4_conv_large": (48, 96, 192, 960),
    "mobilenetv4_hybrid_medium": (48, 80, 160, 960),
    "mobilenetv4_hybrid_large": (48, 96, 192, 960),
    "mobilenetv3_small_100": (16, 24, 48, 576),
    "mobilenetv3_small_075": (16, 24, 40, 432),
    "mobilenetv3_large_100": (24, 40, 112, 960),
    "fasternet_t0": (40, 80, 160, 320),
    "fasternet_t1": (64, 128, 256, 512),
    "fasternet_t2": (96, 192, 384, 768),
    "fasternet_s": (128, 256, 512, 1024),
    "fasternet_m": (144, 288, 576, 1152),
    "fasternet_l": (192, 384, 768, 1536),
    "mobileone_s0": (48, 128, 256, 1024),
    "mobileone_s1": (96, 192, 512, 1280),
    "mobileone_s2": (96, 256, 640, 2048),
    "mobileone_s3": (128, 320, 768, 2048),
    "mobileone_s4": (192, 448, 896, 2048),
    "mobilenetv1_100": (128, 256, 512, 1024),
    "mobilenetv1_125": (160, 320, 640, 1280),
    "mobilenetv2_100": (24, 32, 96, 320),
    "mobilenetv2_050": (16, 16, 48, 160),
    "mobilenetv2_140": (32, 48, 136, 448),
}

# Channels of the stride-2 map (P1, for heads that read it), as timm's feature_info reports them; a model that
# is missing here has no stride-2 map (FasterNet starts at stride 4). tests/test_backbones.py checks this too.
TIMM_P1_CHANNELS = {
    "mobilenetv4_conv_small": 32,
    "mobilenetv4_conv_small_050": 32,
    "mobilenetv4_conv_medium": 32,
    "mobilenetv4_conv_large": 24,
    "mobilenetv4_hybrid_medium": 32,
    "mobilenetv4_hybrid_large": 24,
    "mobilenetv3_small_100": 16,
    "mobilenetv3_small_075": 16,
    "mobilenetv3_large_100": 16,
    "mobileone_s0": 48,
    "mobileone_s1": 64,
    "mobileone_s2": 64,
    "mobileone_s3": 64,
    "mobileone_s4": 64,
    "mobilenetv1_100": 64,
    "mobilenetv1_125": 80,
    "mobilenetv2_100": 16,
    "mobilenetv2_050": 8,
    "mobilenetv2_140": 24,
}

# Measured: every model above runs at 32x32 (stride-32 maps of 1x1), in eval mode and in train mode at
# batch 2. tests/test_backbones.py keeps this true; ultralytics' 256 stride probe is well above it.
MIN_INPUT_SIZE = 32
