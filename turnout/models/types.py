"""Field types shared by several entity specs (like Kong's typedefs)."""

from typing import Annotated

from pydantic import Field, StringConstraints

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"),
    Field(
        description="Unique name: letters, digits and . _ ~ -, starting with a letter or digit, "
        "at most 128 characters.",
        examples=["orders"],
    ),
]

Tag = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9._~:/=-]{1,64}$"),
    Field(description="A free-form label used to select entities."),
]

Tags = Annotated[list[Tag], Field(default_factory=list, max_length=32)]

Port = Annotated[int, Field(ge=1, le=65535, description="TCP port.")]

Weight = Annotated[int, Field(ge=0, le=1_000_000, description="Non-negative integer weight.")]
