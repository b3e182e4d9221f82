-- One row per treatment of a current definition; `configurations` arrives as a string holding
-- JSON and is parsed here.
with definitions as (
    select * from {{ ref('stg_split__flag_definitions') }}
),

treatments as (
    select
        definitions.environment_id,
        definitions.workspace_id,
        definitions.flag_id,
        treatment_index.idx as treatment_index,
        {{ json_element('definitions.treatments', 'treatment_index.idx') }} as treatment
    from definitions
    {{ join_json_array_indexes('definitions.treatments', 'treatment_index') }}
)

select
    environment_id,
    workspace_id,
    flag_id,
    treatment_index,
    {{ json_text('treatment', 'name') }} as treatment_name,
    {{ json_text('treatment', 'description') }} as treatment_description,
    {{ parse_json(json_text('treatment', 'configurations')) }} as configurations,
    {{ json_array_length(json_value('treatment', 'keys')) }} as targeted_key_count,
    {{ json_value('treatment', 'keys') }} as targeted_keys,
    {{ json_value('treatment', 'segments') }} as targeted_segments
from treatments
