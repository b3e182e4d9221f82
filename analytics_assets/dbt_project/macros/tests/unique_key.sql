{#- The natural key of a model: no two rows share these columns (no hub package needed). -#}
{% test unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as row_count
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
