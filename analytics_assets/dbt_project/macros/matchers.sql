{#- The columns of one targeting matcher (a JSON object), shared by flag rules and rule-based
    segment rules. Two dialects exist (contract §3.6): the flag dialect (`type`, `attribute`,
    `negate`, `string` / `strings` / `number` / `between` / `depends`) and the docs example's
    `attribute` / `operator` / `value`, where the kind of `value` says which of those it is. -#}
{% macro matcher_columns(matcher) -%}
  {%- set value = json_value(matcher, 'value') -%}
  {%- set kind = json_kind(value) -%}
  {%- set matcher_type = "coalesce(" ~ json_text(matcher, 'type') ~ ", " ~ json_text(matcher, 'operator') ~ ")" -%}
  {%- set string_value = "coalesce(" ~ json_text(matcher, 'string') ~ ", case when " ~ kind ~ " = 'string' then " ~ json_text(matcher, 'value') ~ " end)" -%}
  {%- set between = "coalesce(" ~ json_value(matcher, 'between') ~ ", case when " ~ kind ~ " = 'object' then " ~ value ~ " end)" -%}
    {{ matcher_type }} as matcher_type,
    coalesce(cast({{ json_text(matcher, 'negate') }} as {{ dbt.type_boolean() }}), false) as negate,
    {{ json_text(matcher, 'attribute') }} as attribute,
    {{ string_value }} as string_value,
    coalesce({{ json_value(matcher, 'strings') }}, case when {{ kind }} = 'array' then {{ value }} end) as set_values,
    cast(coalesce({{ json_text(matcher, 'number') }}, case when {{ kind }} = 'number' then {{ json_text(matcher, 'value') }} end) as {{ dbt.type_float() }}) as number_value,
    cast({{ json_text(between, 'from') }} as {{ dbt.type_float() }}) as between_from,
    cast({{ json_text(between, 'to') }} as {{ dbt.type_float() }}) as between_to,
    case when {{ matcher_type }} = 'IN_SEGMENT' then {{ string_value }} end as segment_name,
    case when {{ matcher_type }} = 'IN_RULE_BASED_SEGMENT' then {{ string_value }} end as matched_rule_based_segment_name,
    coalesce({{ json_text(json_value(matcher, 'depends'), 'splitName') }},
      case when {{ kind }} = 'object' then {{ json_text(value, 'splitName') }} end) as depends_on_flag
{%- endmacro %}
